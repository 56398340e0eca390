"""``python -m ecgcli`` runs the same app as the ``ecg`` console script (and torchrun uses it)."""

from ecgcli.cli.app import main

if __name__ == "__main__":
    main()
