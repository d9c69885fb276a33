"""The imperative shell: config, validation, the Faust worker, the model, replay I/O, the CLI."""
