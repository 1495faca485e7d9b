"""``python -m prefect_ml`` runs the CLI."""

from prefect_ml.cli import main

main()
