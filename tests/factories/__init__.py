"""factory-boy factories, one module per app. ``seed_demo`` builds its data from these too."""
