import pytest


@pytest.fixture(autouse=True)
def _mlflow_file_store(monkeypatch):
    """MLflow 3 refuses a ``file:`` tracking store unless asked; the tests keep their runs under ``tmp_path``."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
