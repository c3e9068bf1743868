"""MLflow-tracked pipelines over the fields: arrives with its own issue."""
