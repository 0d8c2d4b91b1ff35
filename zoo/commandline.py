"""The one command-line grammar every ResBench entry point shares (``python -m zoo``,
``search.train``, ``search.run``, ``search.probe``, ``search.campaign``, ``leaderboards``).

- Bad arguments are one line on stderr, ``error: ...``, and exit status 2, like every other bad
  input, with a "did you mean" where a near match exists (a misspelt option or choice).
- Lists are comma-separated values of one option: ``--models resnet20,plain20``,
  ``--plugins a,b``, ``--runs RUN,RUN``, ``--baselines timm:resnet18d,cifar_vgg16_bn``.
- Fixed sets are argparse choices, so ``--help`` lists them and a wrong one is caught at once.
- Options are never abbreviated (``--seed`` is not ``--seeds``), and an option one command takes
  in another form is answered with that form: a run's ``--lr 0.1`` is a search's
  ``--recipe lr=0.1``, and the other way round.

It lives in ``zoo`` (the bottom layer) so ``zoo`` and ``leaderboards`` use it without importing
``search``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

_INVALID_CHOICE = re.compile(r"argument (?P<option>[^:]+): invalid choice: '?(?P<value>[^' ]*)'? \(choose from (?P<choices>.*)\)$")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (?P<words>.*)$")
_REQUIRED = re.compile(r"the following arguments are required: (?P<names>.*)$")


def near(value: str, choices: list[str], most: int = 1, spelled: Callable[[str], str] = str) -> str:
    """``" (did you mean X?)"`` for the closest choice (or the ``most`` closest), or nothing;
    ``spelled`` writes a match as the user would type it (``epochs`` as ``--epochs``)."""
    matches = difflib.get_close_matches(value, choices, n=most, cutoff=0.6)
    return f" (did you mean {', '.join(map(spelled, matches))}?)" if matches else ""


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that name the valid choices and the near ones, and
    no abbreviated options: argparse would read ``search.run --seed 3`` (a run's seed, which a
    search does not take) as ``--seeds 3``, three seeds per configuration, without a word."""

    def __init__(self, *args: Any, key_value_options: dict[str, list[str]] | None = None, **kwargs: Any) -> None:
        """``key_value_options``: options that take ``KEY=VALUE`` words, with their keys
        (search.run's ``--recipe`` and the recipe fields), so ``--lr 0.1`` is answered
        ``--recipe lr=0.1``."""
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.key_value_options = key_value_options or {}

    def error(self, message: str) -> NoReturn:
        if invalid := _INVALID_CHOICE.match(message):
            choices = [choice.strip().strip("'") for choice in invalid["choices"].split(",")]
            message = f"argument {invalid['option']}: invalid choice {invalid['value']!r}{near(invalid['value'], choices)}; valid: {', '.join(choices)}"
        elif unknown := _UNRECOGNIZED.match(message):
            words = unknown["words"].split()
            first, _, value = words[0].partition("=")
            value = value or (words[1] if len(words) > 1 and not words[1].startswith("-") else "VALUE")
            message = f"unrecognized arguments: {unknown['words']}{self._option_hint(first, value) if first.startswith('--') else ''}"
        elif missing := _REQUIRED.match(message):
            # A missing subcommand or other fixed choice: name what it may be.
            names = [name.strip() for name in missing["names"].split(",")]
            choices = {action.dest: action.choices for action in self._actions if action.choices and not action.option_strings}
            listed = [f"{name} ({', '.join(choices[name])})" if name in choices else name for name in names]
            message = f"the following arguments are required: {', '.join(listed)}"
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def set_file_defaults(self, settings: dict[str, Any], source: str) -> None:
        """A settings file's values (``--config FILE``) as this parser's defaults, in the form a
        command line gives them, so flags given still win and every value meets its option's own
        type: argparse converts and checks a default only when it is text, so a file's
        ``seed: true`` or ``log: 5`` would otherwise reach the program as a boolean or a number.
        Switches take true or false; an option of several words (``--recipe``) takes its list.
        A value its option refuses is refused here, naming the file and the setting (argparse
        would name a flag the file never spelt, and never checks a default against its choices)."""
        defaults: dict[str, Any] = {}
        for action in self._actions:
            if action.dest not in settings:
                continue
            value = settings[action.dest]
            if action.nargs == 0:  # a switch (--resume)
                if not isinstance(value, bool):
                    raise ValueError(f"{source}: {action.dest} is a switch, true or false; got {value!r}")
                defaults[action.dest] = value
            elif value is None or action.nargs in ("*", "+"):
                defaults[action.dest] = value
            else:
                defaults[action.dest] = text = option_text(value)
                try:
                    converted = self._get_value(action, text)
                except argparse.ArgumentError as error:
                    raise ValueError(f"{source}: {action.dest}: {error.message}") from None
                if action.choices is not None and converted not in action.choices:
                    choices = [str(choice) for choice in action.choices]
                    raise ValueError(f"{source}: {action.dest}: invalid choice {text!r}{near(text, choices)}; valid: {', '.join(choices)}")
        self.set_defaults(**defaults)

    def options_given(self, argv: list[str]) -> list[str]:
        """The options ``argv`` itself gives (each by its first name), not those left at their
        defaults, in the parser's order: what a mode that ignores an option checks for."""
        # argparse fills in a default only where the namespace lacks the attribute, so whatever
        # still holds its marker after parsing was not on the command line. Options that add to
        # what they find (append, count) start from None, argparse's own empty value, instead.
        adding = (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)
        options = [action for action in self._actions if action.option_strings]
        markers = {action.dest: None if isinstance(action, adding) else object() for action in options}
        parsed = self.parse_args(argv, argparse.Namespace(**markers))
        given: dict[str, str] = {}  # by destination: options that share one are named by the first
        for action in options:
            if getattr(parsed, action.dest) is not markers[action.dest]:
                given.setdefault(action.dest, action.option_strings[0])
        return list(given.values())

    def _option_hint(self, option: str, value: str) -> str:
        """Where an unknown ``--option`` belongs: the subcommands that take it, the option that
        takes it as a key, or the nearest option by name (dashes aside: every long option shares
        them, which made ``--models`` look near ``--decode``)."""
        owners = [name for action in self._actions if isinstance(action, argparse._SubParsersAction) for name, parser in action.choices.items() if option in parser._option_strings()]
        if owners:
            return f" ({option} is an option of {', '.join(owners)})"
        key = option.removeprefix("--").replace("-", "_")
        for key_value_option, keys in self.key_value_options.items():
            if key in keys:
                return f" (did you mean {key_value_option} {key}={value}?)"
        names = [known.removeprefix("--") for known in self._option_strings() if known.startswith("--")]
        return near(option.removeprefix("--"), names, spelled=lambda name: f"--{name}")

    def _option_strings(self) -> list[str]:
        """This parser's options and its subcommands' (whose leftovers this parser reports)."""
        options = []
        for action in self._actions:
            options += action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                options += [option for parser in action.choices.values() for option in parser._option_strings()]
        return options


EXIT_IO_ERROR = 74  # EX_IOERR: a read or write failed (a full disk, a lost mount); fixed, the same command goes on


def exit_status(main: Callable[[], int | None]) -> int:
    """An entry point's ``main`` run for its exit status. Output its reader stops reading
    (``resbench zoo list | head -3``) ends the command quietly with status 1, as Python's
    documentation advises, not in a BrokenPipeError traceback. A file system that refuses a
    read or a write (full, gone, read-only, squashing root) is one line naming the file, status
    74: every write is atomic, so what was written before it is whole."""
    try:
        status = main()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
    except BrokenPipeError:
        # The interpreter flushes stdout once more at exit: that flush goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        print(os_error_line(error, "what was written before is whole: fix this and run the same command again"), file=sys.stderr)
        return EXIT_IO_ERROR
    return int(status or 0)


def os_error_line(error: OSError, then: str) -> str:
    """A refused read or write as one ``error:`` line: the reason, the file where one is named,
    and ``then``, what the user does next."""
    reason = error.strerror or next(iter(str(error).splitlines()), type(error).__name__)  # one line, whatever raised it
    where = f" ({error.filename})" if error.filename else ""
    return f"error: {reason}{where}; {then}"


def option_text(value: Any) -> str:
    """A settings file's value as its option's text: lists comma-joined, booleans lower-case."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def comma_list(text: str) -> list[str]:
    """An option's comma-separated values (argparse ``type``), empty items dropped."""
    return [item for item in text.split(",") if item]
