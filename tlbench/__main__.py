"""``python -m tlbench``: the command line, as the ``tlbench`` script."""
from tlbench.cli import main

if __name__ == "__main__":
    main()
