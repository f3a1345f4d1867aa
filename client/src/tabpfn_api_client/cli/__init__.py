"""`tabpfn-api`, the command line of tabpfn-api-client (see `main.py`)."""
