"""Errors meant for the user: the CLI prints their message alone, without a traceback."""


class SeqlabError(Exception):
    """Base class of every error caused by bad input (files, data, configs, names)."""


class ConfigError(SeqlabError, ValueError):
    """A config key, value or file is wrong; the message names the key and what was expected."""
