"""Imports every model module, so metadata (Alembic, tests) sees the whole schema."""

from portal import audit, mail  # noqa: F401
from portal.auth import models as auth_models  # noqa: F401
from portal.documents import models as document_models  # noqa: F401
from portal.orders import models as order_models  # noqa: F401
from portal.suppliers import models as supplier_models  # noqa: F401
from portal.tenancy import models as tenancy_models  # noqa: F401
