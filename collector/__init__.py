"""hookflash collector: sources → decode → gate → tag → sinks."""
