"""GGUF (llama.cpp's model file format), read from scratch: metadata, tensors, dequantization, import."""
