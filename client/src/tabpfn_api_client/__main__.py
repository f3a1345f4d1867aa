"""`python -m tabpfn_api_client`: the `tabpfn-api` command line."""

import sys

from tabpfn_api_client.cli.main import main

sys.exit(main())
