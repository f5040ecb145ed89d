"""Razor's OPD trainer (issue 21, phase C): safetensors I/O, the student's forward with per-expert LoRA, the loss,
the data of phases A / B and the trainer. See docs/recovery.md."""
