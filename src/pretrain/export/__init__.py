"""The final model as GGUF files for llama.cpp and Ollama (pretrain.export.gguf), each checked
by reading it back through transformers and, when installed, llama.cpp (pretrain.export.check)."""
