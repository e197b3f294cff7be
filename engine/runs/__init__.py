"""A run folder's I/O, shared by training, generation, the model server and evaluation: checkpoints, the event
log, and loading a trained model with its tokenizer."""
