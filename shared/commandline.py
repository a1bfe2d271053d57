"""What a package server's command line runs (FR-020): launchers, inline code, fetched packages.

`analyse(argv)` reads an argv the way the program named by `argv[0]` would and reports
- every launcher it starts, wrappers unwrapped (`env X`, `busybox X`, `uv run X`);
- inline code: a program given as text rather than as a named file or module
  (`python -c`, `node -e/-p/--eval/--print`, `perl -e`, `ruby -e`, `sh -c`, `pwsh -Command`,
  `deno eval`, `npx -c`, `env -S`, ...), combined short flags included (`-ce`, `-pe`), and a
  program read from stdin (`python -`, `sh -s`, an interpreter with no program at all):
  a stdio server's stdin is the MCP stream, so that program would come from the caller;
- the packages a fetching launcher downloads (`npx`, `npm exec/install`, `uvx`, `uv tool
  run/install`, `uv run --with`, `pip install`, `pipx run/install`, `pnpm dlx/add`, `bunx`),
  `--package/-p`, `--from`, `--with`, `--spec` included, and every source that is not a
  registry package name (URL, git, local path, tarball, custom index or registry).
The syntax tables follow each tool's documented options; an option this module does not
know is read as a flag, and when its next word could be its value, that word is not
taken for the program (so an unknown option cannot hide a later `-c`). `shared.clearance`
applies the deployment's allowlists to what is found here.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

STDIN = "reads its program from stdin"


@dataclass
class Findings:
    """What one argv runs: `launchers` (argv[0] and wrapped commands), `inline` (the forms
    that run inline code), `packages` (registry names fetched) and `sources` (fetches
    that are not registry names: URLs, git, paths, tarballs, indexes)."""

    launchers: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Syntax:
    """An interpreter's option syntax: short letters that take inline code, that name the
    program (`python -m`), that take a value (attached or the next word) or an attached
    value only; long options likewise; `flags` are known long flags (globs)."""

    inline: str = ""
    program: str = ""
    value: str = ""
    attached: str = ""
    digits: str = ""  # letters taking only digits attached: `perl -l0 -e` is `-l0` then `-e`
    inline_long: frozenset[str] = frozenset()
    value_long: frozenset[str] = frozenset()
    code_long: frozenset[str] = frozenset()  # value is a module to load: `data:` is inline code
    flags: tuple[str, ...] = ()
    plus: bool = False  # shells: `+o name` works like `-o name`
    needs_program: bool = True  # without one it reads stdin


_PYTHON = _Syntax(inline="c", program="m", value="WX",
                  value_long=frozenset({"--check-hash-based-pycs"}),
                  flags=("--help", "--version", "--help-*"))
_NODE = _Syntax(inline="epi", value="rC",
                inline_long=frozenset({"--eval", "--print", "--interactive", "--run"}),
                value_long=frozenset({"--require", "--import", "--loader", "--experimental-loader", "--conditions",
                                      "--input-type", "--env-file", "--title", "--disable-warning", "--watch-path",
                                      "--inspect-port", "--redirect-warnings", "--stack-trace-limit"}),
                code_long=frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader"}),
                flags=("--experimental-*", "--no-*", "--trace-*", "--enable-*", "--inspect*", "--watch",
                       "--test", "--check", "--version", "--help", "--expose-gc", "--preserve-symlinks*",
                       "--abort-on-uncaught-exception", "--pending-deprecation", "--throw-deprecation"))
_BUN = _Syntax(inline="ep", value="r", inline_long=frozenset({"--eval", "--print"}),
               value_long=frozenset({"--preload", "--cwd", "--env-file", "--config"}),
               code_long=frozenset({"-r", "--preload"}), needs_program=False)
_PERL = _Syntax(inline="eE", value="I", attached="MmixFCdDV", digits="l0")
_RUBY = _Syntax(inline="e", value="IrCEF", attached="WTKx", digits="0")
_PHP = _Syntax(inline="raRBE", program="f", value="cdz")
_SHELL = _Syntax(inline="csi", value="oO", value_long=frozenset({"--rcfile", "--init-file"}),
                 flags=("--login", "--noprofile", "--norc", "--posix", "--restricted", "--verbose",
                        "--debugger", "--noediting", "--help", "--version"), plus=True)

_INTERPRETERS: tuple[tuple[re.Pattern[str], _Syntax], ...] = (
    (re.compile(r"(python|pypy)[0-9.]*"), _PYTHON),
    (re.compile(r"node(js)?[0-9]*"), _NODE),
    (re.compile(r"bun"), _BUN),
    (re.compile(r"perl[0-9.]*"), _PERL),
    (re.compile(r"ruby[0-9.]*"), _RUBY),
    (re.compile(r"php[0-9.]*"), _PHP),
    (re.compile(r"(sh|bash|dash|zsh|ksh|mksh|ash|yash|fish|csh|tcsh)"), _SHELL),
)
# `python -m` modules that run code given as text or read from stdin (REPLs, profilers)
_CODE_MODULES = frozenset({"code", "pdb", "timeit", "profile", "cProfile", "trace", "asyncio", "idlelib",
                           "runpy", "IPython", "ptpython", "bpython"})


def launcher_name(launcher: str) -> str:
    """The program name of a launcher: its basename without a Windows `.exe`."""
    name = launcher.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-4] if name.lower().endswith(".exe") else name


def analyse(argv: list[str]) -> Findings:
    """Everything `argv` runs or fetches (see the module docstring); never raises."""
    found = Findings()
    _analyse(list(argv), found, depth=0)
    return found


def _analyse(argv: list[str], found: Findings, depth: int, record: bool = True) -> None:
    """`record`: argv[0] is a launcher the spec names (not `pip` standing for `uv pip`)."""
    if not argv or depth > 4:  # wrappers of wrappers of ...: 4 levels is plenty
        return
    if record:
        found.launchers.append(argv[0])
    name, args = launcher_name(argv[0]), argv[1:]
    handler, name, args = _lookup(name, args)
    if handler is not None:
        handler(name, args, found, depth)
        return
    for pattern, syntax in _INTERPRETERS:
        if pattern.fullmatch(name):
            _interpreter(syntax, name, args, found, depth)
            return
    if re.fullmatch(r"(pwsh|powershell)(-preview)?", name):
        form = _pwsh_inline(args, legacy=name.startswith("powershell"))
        if form:
            found.inline.append(f"{name} {form}")


def _lookup(name: str, args: list[str]):
    """(handler, `name [subcommand...]`, the words after it) of a launcher, or (None, name, args).

    Global options may come before a subcommand (`npm --yes exec`, `uv --directory d run`):
    they are skipped, and a word after an option without `=` may be that option's value.
    """
    if name in _HANDLERS:
        return _HANDLERS[name], name, args
    j = 0
    while j < len(args):
        if args[j].startswith("-"):
            j += 1
            continue
        for words in (2, 1):  # the longest match: `uv tool run` before `uv tool`
            key = " ".join([name, *args[j:j + words]])
            if len(args) - j >= words and key in _HANDLERS:
                return _HANDLERS[key], key, args[j + words:]
        if j == 0 or not args[j - 1].startswith("-") or "=" in args[j - 1]:
            break
        j += 1
    return None, name, args


def _interpreter(syntax: _Syntax, name: str, args: list[str], found: Findings, depth: int) -> None:
    form, program = _scan(syntax, args)
    if form:
        found.inline.append(f"{name} {form}")
    elif program is not None and syntax is _PYTHON:
        module, rest = program
        if module in _CODE_MODULES:
            found.inline.append(f"{name} -m {module}")
        elif module == "pip":
            _analyse(["pip", *rest], found, depth + 1, record=False)


def _is_flag(syntax: _Syntax, name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in syntax.flags)


def _code_value(value: str) -> bool:
    return value.startswith("data:") or "://" in value


def _scan(syntax: _Syntax, args: list[str]) -> tuple[str | None, tuple[str, list[str]] | None]:
    """(inline form or None, (program module, its args) for `program` letters or None)."""
    maybe_value = candidate = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return (None if i < len(args) or candidate or not syntax.needs_program else f"-- {STDIN}"), None
        if arg == "-":
            if maybe_value:
                maybe_value = False
                continue
            return f"- ({STDIN})", None
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in syntax.inline_long:
                return arg, None
            if name in syntax.value_long and not eq:
                value, i = (args[i] if i < len(args) else ""), i + 1
            if name in syntax.code_long and _code_value(value):
                return f"{name} {value}", None
            maybe_value = not eq and name not in syntax.value_long and not _is_flag(syntax, name)
            continue
        if arg.startswith("-") or (syntax.plus and arg.startswith("+")):
            letters = re.sub(rf"([{syntax.digits}])(?:x[0-9a-fA-F]+|[0-7]+)", r"\1", arg[1:]) \
                if syntax.digits else arg[1:]
            for j, letter in enumerate(letters):
                rest = letters[j + 1:]
                if letter in syntax.inline:
                    return arg, None
                if letter in syntax.program:
                    module = rest or (args[i] if i < len(args) else "")
                    return None, (module, args[i + (0 if rest else 1):])
                if letter in syntax.value:
                    value = rest or (args[i] if i < len(args) else "")
                    i += 0 if rest else 1
                    if f"-{letter}" in syntax.code_long and _code_value(value):
                        return f"-{letter} {value}", None
                    break
                if letter in syntax.attached:
                    break
            maybe_value = False
            continue
        if maybe_value:  # perhaps the unknown option's value: keep looking for inline code
            maybe_value, candidate = False, True
            continue
        return None, None
    return (None if candidate or not syntax.needs_program else f"with no program ({STDIN})"), None


_PWSH_CODE = ("command", "encodedcommand", "commandwithargs")
_PWSH_VALUES = ("executionpolicy", "configurationname", "configurationfile", "workingdirectory", "windowstyle",
                "outputformat", "inputformat", "settingsfile", "custompipename")


def _pwsh_inline(args: list[str], legacy: bool) -> str | None:
    """PowerShell: parameters are case-insensitive and may be abbreviated to any prefix."""
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            # powershell.exe reads a positional as -Command; pwsh as -File
            return arg if legacy or arg == "-" else None
        param = arg.lstrip("-").split(":", 1)[0].lower()
        if param in ("c", "e", "ec", "cwa") or (len(param) >= 2 and any(w.startswith(param) for w in _PWSH_CODE)):
            return arg
        if len(param) >= 3 and "noexit".startswith(param):
            return f"{arg} (a prompt on stdin)"
        if param == "f" or (len(param) >= 2 and "file".startswith(param)):
            return f"{arg} - ({STDIN})" if i >= len(args) or args[i] == "-" else None
        if param in ("ex", "ep", "config", "wd", "w", "o", "of", "if", "inp", "settings") or (
                len(param) >= 3 and any(w.startswith(param) for w in _PWSH_VALUES)):
            i += 1
    return f"with no program ({STDIN})"


def _deno(name: str, args: list[str], found: Findings, depth: int) -> None:
    positional = [arg for arg in args if arg == "-" or not arg.startswith("-")]
    if not positional or positional[0] in ("eval", "repl"):
        found.inline.append(f"{name} {positional[0] if positional else STDIN}")
        return
    program = positional[1] if positional[0] in ("run", "serve", "test", "bench", "compile", "install") \
        and len(positional) > 1 else positional[0]
    if program == "-":
        found.inline.append(f"{name} run - ({STDIN})")
    elif program.startswith(("npm:", "jsr:")):
        _package_ref(program[4:], found)
    elif "://" in program:
        found.sources.append(program)


def _env(name: str, args: list[str], found: Findings, depth: int) -> None:
    """`env [-i] [-u NAME] [-C DIR] [-S STRING] [NAME=VALUE]... COMMAND`: COMMAND is a launcher."""
    i = 0
    while i < len(args):
        arg = args[i]
        option, eq, value = arg.partition("=")
        if arg in ("-S", "--split-string") or option == "--split-string" or (arg.startswith("-S") and len(arg) > 2):
            text = value if eq else (arg[2:] if arg.startswith("-S") and len(arg) > 2 else
                                     (args[i + 1] if i + 1 < len(args) else ""))
            found.inline.append(f"{name} -S (a command line as text)")
            _analyse(_split(text), found, depth + 1)
            return
        if arg in ("-u", "-C", "--unset", "--chdir"):
            i += 2
        elif arg.startswith("-") or (eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", option)):
            i += 1
        else:
            _analyse(args[i:], found, depth + 1)
            return


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _multicall(name: str, args: list[str], found: Findings, depth: int) -> None:
    """`busybox sh ...`: the applet is the launcher."""
    _analyse(args, found, depth + 1)


# Options of fetching launchers, by meaning. Values of `_SOURCE_OPTIONS` name where
# packages come from (an index, a registry, a file, a URL): sources, not package names.
_PACKAGE_OPTIONS = frozenset({"--package", "--from", "--with", "--spec"})
_SOURCE_OPTIONS = frozenset({"--registry", "--index", "--index-url", "-i", "--extra-index-url", "--default-index",
                             "--find-links", "-f", "--with-requirements", "--with-editable", "-r", "--requirement",
                             "-e", "--editable", "--pip-args"})
_VALUE_OPTIONS = frozenset({"--python", "--prefix", "--cache", "--cache-dir", "--userconfig", "--tag", "--workspace",
                            "-w", "--omit", "--include", "-t", "--target", "--root", "-c", "--constraint",
                            "--directory", "--project", "--python-version", "--platform", "--only-binary",
                            "--no-binary", "--upgrade-strategy", "--trusted-host", "--log", "--proxy", "--timeout"})


@dataclass(frozen=True)
class _Fetcher:
    """A fetching launcher. `run`: the first positional is fetched and run, the words after
    it are its arguments (else every positional is a package to install); `command`: the
    first positional is a command to run (`uv run`), not a package; `short_package`: `-p`
    means `--package` (npm family; for uv it means `--python`); `shell`: options whose value
    is a shell command line (`npx -c`)."""

    run: bool = True
    command: bool = False
    short_package: bool = False
    shell: frozenset[str] = frozenset()


def _fetch(fetcher: _Fetcher, name: str, args: list[str], found: Findings, depth: int) -> None:
    named, positional = False, []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        option, eq, value = arg.partition("=")
        if arg == "--" or not arg.startswith("-") or arg == "-":
            rest = args[i:] if arg == "--" else args[i - 1:]
            if fetcher.run:
                positional = rest
                break
            positional.extend(rest[:1])
            i += 1 if arg == "--" else 0
            continue
        if option in fetcher.shell:
            found.inline.append(f"{name} {option} (a shell command line)")
            return
        package = option in _PACKAGE_OPTIONS or (fetcher.short_package and option == "-p")
        if (package or option in _SOURCE_OPTIONS or option in _VALUE_OPTIONS or option == "-p") and not eq:
            value, i = (args[i] if i < len(args) else ""), i + 1
        if option in _SOURCE_OPTIONS:
            found.sources.append(f"{option} {value}")
        elif package:
            named = named or option != "--with"  # with --package/--from the positional is a command
            for ref in value.split(","):
                _package_ref(ref.strip(), found)
    if fetcher.command and positional:
        if "://" in positional[0]:
            found.sources.append(positional[0])
        else:
            _analyse(positional, found, depth + 1)
    elif fetcher.run:
        if positional and not named:
            _package_ref(positional[0], found)
    else:
        for ref in positional:
            _package_ref(ref, found)


_NAME = re.compile(r"(?P<name>(?:@[A-Za-z0-9][\w.~-]*/)?[A-Za-z0-9][\w.~-]*)(?P<rest>.*)", re.DOTALL)
_ARCHIVE = re.compile(r"\.(tgz|tar|tar\.gz|tar\.bz2|tar\.xz|zip|whl)$", re.IGNORECASE)


def _package_ref(ref: str, found: Findings) -> None:
    """Record `ref` as a registry package name (version, extras and markers stripped) or,
    when it names a URL, git repo, path or archive, as a source."""
    match = _NAME.fullmatch(ref.strip())
    if match is None or _ARCHIVE.search(ref.strip()):
        found.sources.append(ref)
        return
    rest = match["rest"].strip()
    if rest.startswith("["):  # extras
        rest = rest.partition("]")[2].strip()
    if rest.startswith("@"):
        version = rest[1:].strip()
        if version.startswith("npm:"):  # alias@npm:real-package
            _package_ref(version[4:], found)
            return
        if ":" in version or "/" in version:  # name@https://..., name @ git+..., name@github:x/y
            found.sources.append(ref)
            return
    elif rest and rest[0] not in "=<>!~;(,":
        found.sources.append(ref)
        return
    found.packages.append(match["name"])


def _fetcher(**options):
    spec = _Fetcher(**options)
    return lambda name, args, found, depth: _fetch(spec, name, args, found, depth)


def _as(launcher: str):
    """A subcommand that works like another launcher (`uv pip` like `pip`)."""
    return lambda name, args, found, depth: _analyse([launcher, *args], found, depth + 1, record=False)


def _script_runner(name: str, args: list[str], found: Findings, depth: int) -> None:
    """`npm run/start/explore/pkg set ...`: package.json scripts are shell command lines, and
    `npm pkg set scripts.x=...` or `npm init` writes or fetches them."""
    found.inline.append(f"{name} (a package.json script: a shell command line)")


_NPM = frozenset({"-c", "--call"})
_NPX = _fetcher(short_package=True, shell=_NPM)
_INSTALL = _fetcher(run=False)
_HANDLERS = {
    "env": _env, "busybox": _multicall, "toybox": _multicall, "deno": _deno,
    "npx": _NPX, "npm exec": _NPX, "npm x": _NPX, "bunx": _NPX, "bun x": _NPX, "yarn dlx": _NPX,
    "pnpm dlx": _fetcher(short_package=True, shell=frozenset({"-c", "--shell-mode"})),
    "uvx": _fetcher(), "uv tool run": _fetcher(), "pipx run": _fetcher(),
    "uv run": _fetcher(command=True), "uv pip": _as("pip"),
    "npm install": _INSTALL, "npm i": _INSTALL, "npm add": _INSTALL, "pnpm add": _INSTALL,
    "pnpm install": _INSTALL, "yarn add": _INSTALL, "bun add": _INSTALL, "bun install": _INSTALL,
    "pipx install": _INSTALL, "uv tool install": _INSTALL, "pip install": _INSTALL, "pip3 install": _INSTALL,
    "pip download": _INSTALL, "pip wheel": _INSTALL, "uv add": _INSTALL,
    **dict.fromkeys(["npm run", "npm run-script", "npm start", "npm test", "npm restart", "npm stop", "npm explore",
                     "npm pkg", "npm set-script", "npm init", "npm create", "pnpm run", "pnpm start", "pnpm create",
                     "yarn run", "yarn start", "yarn create", "bun create"], _script_runner),
}
