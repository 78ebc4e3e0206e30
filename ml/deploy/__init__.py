"""What a multi-service deployment (docker-compose.yml, `make test-deploy`) needs beyond the pipeline itself:
its secrets checked before anything starts, and the service accounts of MLflow and Airflow."""
