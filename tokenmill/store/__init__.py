"""The database: tables, migrations, sessions (and Redis for shared counters)."""

from tokenmill.store import app_tables as app_tables  # their tables join the metadata
from tokenmill.store import audit_tables as audit_tables
from tokenmill.store import dataset_tables as dataset_tables
from tokenmill.store import eval_tables as eval_tables
from tokenmill.store import fleet_tables as fleet_tables
from tokenmill.store import tuning_tables as tuning_tables
