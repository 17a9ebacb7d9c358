"""Fine-tuning: instruction data, the synthetic task suite, and supervised fine-tuning."""
