"""The coupon model's MLflow pyfunc, logged as models-from-code: MLflow runs this file to load it, and the model
itself comes from its skops artifact (UpliftPyfunc.load_context). No pickle is stored."""

import mlflow
from ml.uplift.model import UpliftPyfunc

mlflow.models.set_model(UpliftPyfunc())
