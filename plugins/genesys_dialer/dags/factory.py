"""The DAG entry point: one DAG per campaign of the config file, for a two-line file in a DAGs folder::

    from genesys_dialer.dags.factory import campaign_dags
    globals().update(campaign_dags(__file__))  # airflow DAG file

Parsing reads one YAML file and touches no database, Variable or network. An invalid campaign entry does not
take the valid ones down: it becomes a DAG of its own (under the campaign's dag_id when its key is usable) that
claims and sends nothing and fails at once, naming file, campaign and field. (An import error would not do:
Airflow marks every DAG of a file with an import error stale, the valid ones included.)

Many campaigns: the dag-processor parses one file in one process, against ``[core] dagbag_import_timeout`` (30 s)
and ``[dag_processor] dag_file_processor_timeout`` (50 s), and a campaign DAG costs about 4.3 ms of CPU to build and
serialize (most of it Airflow's own). So beyond CAMPAIGNS_PER_FILE campaigns, spread them over several DAG files,
each building its share (a file building more than twice that logs a warning saying how many files to use)::

    globals().update(campaign_dags(__file__, shard=0, shards=4))  # genesys_predictive_0.py; 1, 2, 3 alike

A campaign's shard depends on its dag_id only (a stable hash), so adding or removing campaigns moves no other
campaign to another file. Every shard file reads the whole config (the validated config is cached on disk, see
:func:`genesys_dialer.config.load_config`), and a file-wide config error is every shard's import error.
"""

from __future__ import annotations

import logging
import math
import zlib
from pathlib import Path

from airflow.sdk import DAG

from genesys_dialer.config import connections_across_databases, default_config_path, load_config
from genesys_dialer.dags.builder import build_campaign_dag, build_config_error_dag
from genesys_dialer.exceptions import ConfigError

log = logging.getLogger(__name__)

# Campaigns per DAG file: 500 parse in 2.1 s of CPU on a quiet day (benchmarks/bench_parse.py), 2-3 times that on a
# busy one: inside Airflow's 30 s import timeout with room to spare. Fewer, larger files cost less in all (each
# file's parse has its own start-up); one file building more than twice as many logs a warning.
CAMPAIGNS_PER_FILE = 500


def shard_of(dag_id: str, shards: int) -> int:
    """The shard (0 .. shards - 1) whose DAG file builds ``dag_id``: stable across runs, machines and Pythons."""
    return zlib.crc32(dag_id.encode("utf-8")) % shards


def campaign_dags(dag_file: str | Path, *, shard: int = 0, shards: int = 1) -> dict[str, DAG]:
    """The DAGs of ``$GENESYS_DIALER_CONFIG``, else of ``campaigns.yaml`` beside ``dag_file``, by dag_id; with
    ``shards`` > 1, only those of ``shard`` (see the module docstring)."""
    if not (isinstance(shards, int) and isinstance(shard, int) and 0 <= shard < shards):
        raise ConfigError(f"{dag_file}: campaign_dags(shard={shard!r}, shards={shards!r}): need 0 <= shard < shards")
    config = load_config(default_config_path(Path(dag_file).resolve().parent))

    def mine(dag_id: str) -> bool:
        return shards == 1 or shard_of(dag_id, shards) == shard

    dags = {campaign.dag_id: build_campaign_dag(campaign) for campaign in config.campaigns if mine(campaign.dag_id)}
    dags.update({entry.dag_id: build_config_error_dag(entry) for entry in config.invalid if mine(entry.dag_id)})
    if shard == 0:  # said once per config, not once per shard file
        for conn_id, databases in connections_across_databases(config.campaigns).items():
            log.warning(
                "Genesys connection %s is used by campaigns whose rate budgets live in different databases (%s): "
                "each database paces its OAuth client on its own (together they can exceed its limit and meet "
                "429s), and a task may go on sending up to breaker_cache_seconds after a campaign on another "
                "database opened the shared breaker. Set budget_postgres_conn_id to one of them in the config's "
                "defaults, or give the campaigns separate connections (OAuth clients) (docs/resilience.md)",
                conn_id, ", ".join(databases),
            )
    if len(dags) > 2 * CAMPAIGNS_PER_FILE:
        files = math.ceil((len(config.campaigns) + len(config.invalid)) / CAMPAIGNS_PER_FILE)
        log.warning(
            "%s builds %d campaign DAGs in one parse; the dag-processor parses a file in one process under a "
            "timeout: spread the campaigns over %d DAG files, campaign_dags(__file__, shard=i, shards=%d) in "
            "file i = 0 .. %d (docs/configuration.md, Many campaigns)",
            dag_file, len(dags), files, files, files - 1,
        )
    return dags
