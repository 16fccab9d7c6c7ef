"""The pyfunc model "from code": the file MLflow logs with each model and runs to build it.

MLflow logs a ``PythonModel`` either as a pickled object (cloudpickle, which it warns
about) or as a file that calls ``mlflow.models.set_model``. ``SalescastModel`` holds no
state of its own before ``load_context`` reads the logged artifacts (forecaster,
metadata, reference sample), so this file is the whole of its construction. It runs in
the loading process with the model's ``code_paths`` (``features``, ``training``) on
``sys.path``.
"""

from mlflow.models import set_model

from training.pyfunc import SalescastModel

set_model(SalescastModel())
