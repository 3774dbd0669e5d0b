"""The `hookflash` command line."""
