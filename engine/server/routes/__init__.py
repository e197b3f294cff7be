"""The model server's routers, one per API it speaks: the seed's, OpenAI's and vLLM's tokenizer endpoints."""
