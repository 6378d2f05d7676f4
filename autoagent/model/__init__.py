"""The model seam: the OpenAI-compatible client, the local GGUF model process, replies,
prompts, prices, and the scripted model server that tests drive the loop with."""
