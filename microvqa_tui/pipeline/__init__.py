"""Pipeline steps: each reads what earlier steps wrote to the store and writes its own table."""
