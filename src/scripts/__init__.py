"""The workflow's entry scripts, one per rule (the figures' in `plots/`): each turns a rule's
inputs, outputs and params into calls of the library `gfe` and the helpers in `pipeline`, and
writes files. Run by the rules as `python src/scripts/<name>.py` with src/ on PYTHONPATH; no
script imports another."""
