"""The online service: MLflow scoring protocol over FastAPI/uvicorn, routing, prediction log."""
