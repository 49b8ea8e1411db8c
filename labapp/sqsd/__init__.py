"""The mini sqsd: its options, the POST it builds, the daemon loop, its events, cron and periodic tasks."""

from labapp.sqsd.cron import CronSchedule, CronTask, load_cron, parse_cron_yaml
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.ebextensions import load_ebextensions
from labapp.sqsd.events import DaemonEvent, EventKind, Listener
from labapp.sqsd.options import AWS_DEFAULTS, LAB_PROFILE, OPTION_NAMES, SqsdOptions, with_options
from labapp.sqsd.periodic import TASK_BODY, Lease, Scheduler, task_attributes
from labapp.sqsd.post import ARTICLE_FORM_WARNING, ENCODINGS, Encoding, Post, build_post

__all__ = [
    "ARTICLE_FORM_WARNING",
    "AWS_DEFAULTS",
    "ENCODINGS",
    "LAB_PROFILE",
    "OPTION_NAMES",
    "TASK_BODY",
    "CronSchedule",
    "CronTask",
    "Daemon",
    "DaemonEvent",
    "Encoding",
    "EventKind",
    "Lease",
    "Listener",
    "Post",
    "Scheduler",
    "SqsdOptions",
    "build_post",
    "load_cron",
    "load_ebextensions",
    "parse_cron_yaml",
    "task_attributes",
    "with_options",
]
