"""Imports every model module, so metadata (Alembic, tests) sees the whole schema."""

from portal import (  # noqa: F401
    audit,
    mail,
    outbox,
)
from portal.api import models as api_models  # noqa: F401
from portal.auth import models as auth_models  # noqa: F401
from portal.documents import models as document_models  # noqa: F401
from portal.erp import models as erp_models  # noqa: F401
from portal.exports import models as export_models  # noqa: F401
from portal.notifications import models as notification_models  # noqa: F401
from portal.orders import models as order_models  # noqa: F401
from portal.scorecards import models as scorecard_models  # noqa: F401
from portal.suppliers import models as supplier_models  # noqa: F401
from portal.tenancy import models as tenancy_models  # noqa: F401
