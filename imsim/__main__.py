"""`python -m imsim COMMAND ...` = `imsim COMMAND ...`."""

from imsim.cli import main

if __name__ == "__main__":
    main()
