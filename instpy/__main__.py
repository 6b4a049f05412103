"""`python -m instpy` runs the command line."""

from instpy.cli import main

if __name__ == "__main__":
    main()
