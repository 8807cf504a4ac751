"""The training side: forecasting/ and vision/ (the two tasks, never importing each other), tracking/ (MLflow,
knowing neither task), and the settings and seeding both share."""
