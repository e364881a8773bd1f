"""`python -m envdesk`: the same as the `envdesk` command."""
import sys

from envdesk.launch import main

sys.exit(main())
