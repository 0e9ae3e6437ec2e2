"""Placeholder until this command is written (replaced in this session)."""


def add_parser(sub):
    return None
