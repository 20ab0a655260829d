"""Test-wide settings: pydicom's validation messages quote element values, so they stay out of test output."""

from __future__ import annotations

import logging

from pydicom import config

config.settings.reading_validation_mode = config.IGNORE
logging.getLogger("pydicom").propagate = False
