"""The subcommands of `actormimic-fast`, one module each.

A command module has NAME and register(subparsers), which adds its parser and sets ``run`` as the
parser's default: run(args, parser) -> exit code. Add a command by listing its module in COMMANDS.
"""

from . import distill, evaluate, play, report, ship_amn, ship_expert, train_expert, train_multitask_dqn, transfer

COMMANDS = (train_expert, ship_expert, distill, ship_amn, train_multitask_dqn, transfer, evaluate, play, report)
