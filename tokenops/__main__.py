"""`python -m tokenops`."""

from tokenops.cli import main

main()
