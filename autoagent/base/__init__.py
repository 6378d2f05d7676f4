"""The base every layer stands on: the error tree, the one Settings object, text cleaning."""
