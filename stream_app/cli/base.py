"""What the ``rfm`` commands share: the settings the group built once for the invocation."""

from __future__ import annotations

import click

from stream_app.settings import Settings

__all__ = ["current_settings"]


def current_settings() -> Settings:
    """The settings of this ``rfm`` invocation.

    The ``rfm`` group builds them from the ``RFM_*`` variables before any command runs, so a
    wrong value ends every command the same way; a command invoked on its own (in a test)
    builds them here.
    """
    return click.get_current_context().ensure_object(Settings)
