"""LLModel engine: the library that builds, trains and runs transformer language models.

The engine never imports the front end (``llmodel_app``) or Textual.
"""

__version__ = "0.1.0"
