"""The mlops-ops pages in the Airflow UI: an Airflow plugin (``plugin``) whose FastAPI app
(``app``) serves the stored reports and a page per pipeline, behind Airflow's login.
See docs/ui.md."""
