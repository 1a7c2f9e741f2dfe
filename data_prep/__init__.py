"""Command-line data preparation steps over emokeras: ``python -m data_prep.<step>``."""
