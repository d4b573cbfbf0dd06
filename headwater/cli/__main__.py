"""``python -m headwater.cli``: how the stack starts gateway and worker processes."""

from headwater.cli import main

if __name__ == "__main__":
    main()
