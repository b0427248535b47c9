"""What the embedded engine may do, and how it says no (used by chdb_server.py).

- ClickHouse's errors as the HTTP interface reports them: `ClickHouseError`, the HTTP status
  ClickHouse gives each exception code, and chDB's exceptions read back into codes;
- the SQL guard: what grants cannot express (`INTO OUTFILE`, `FROM INFILE`, `ATTACH … FROM`, the
  `file()` function, chDB's `python()`, every table function not on an allowlist, several
  statements in one request) refused by a tokenizer before the engine sees the query;
- the engine's access config: the one user every connection runs as, its grants, and the
  settings that name files pinned.

Kept apart from the HTTP server so the security rules read as one piece (docs/security.md,
"Embedded engine"); the server learns the engine's codes and table functions at start through
`learn_engine`.
"""

import os
import re

ERROR_CODE = re.compile(r"Code:\s*(\d+)")
# ClickHouse's exception code -> HTTP status, transcribed from ClickHouse's
# src/Server/HTTP/exceptionCodeToHTTPStatus.cpp by name; the numbers come from the engine itself
# (errorCodeToName) at start, so they cannot drift from the chDB release. Anything else is 500.
STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **{n: 403 for n in ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED",
                        "SET_NON_GRANTED_ROLE", "ACCESS_DENIED")},
    **{n: 400 for n in (
        "BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
        "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME",
        "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4",
        "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID",
        "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE",
        "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST", "UNEXPECTED_AST_STRUCTURE",
        "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE")},
    **{n: 404 for n in (
        "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE", "UNKNOWN_STORAGE",
        "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
        "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE")},
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503, "CANNOT_OPEN_FILE": 503, "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}
STATUS_BY_CODE = {}  # filled in main() from STATUS_BY_NAME
# Codes the shim raises itself (the same numbers as ClickHouse's).
REQUIRED_PASSWORD, AUTHENTICATION_FAILED, ACCESS_DENIED, SYNTAX_ERROR = 194, 516, 497, 62

# Table functions that read only the database or generate data. Every other table function the
# engine knows (queried at start, so a new chDB release adds none silently) is refused.
ALLOWED_TABLE_FUNCTIONS = {
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom", "generate_series",
    "generateseries", "values", "null", "view", "merge", "loop", "input", "format", "primes",
}
# Functions (not table functions) that reach outside the database: `file()` reads any path in
# clickhouse-local mode, where ClickHouse skips its user_files_path check.
DENIED_FUNCTIONS = {"file"}
# Words refused anywhere outside literals: client-side file I/O that chDB executes in-process.
DENIED_WORDS = {"outfile", "infile"}
# Statements refused by their first word: `ATTACH … FROM '<path>'` attaches any directory.
DENIED_STATEMENTS = {"attach"}


class ClickHouseError(Exception):
    def __init__(self, code, message, status=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, 500)


def chdb_error(exc):
    text = str(exc)
    for prefix in ("Streaming query failed: ", "Streaming insert finish failed: ",
                   "Streaming insert append failed: "):
        text = text.replace(prefix, "")
    match = ERROR_CODE.search(text)
    code = int(match.group(1)) if match else 1001
    return ClickHouseError(code, text.strip())


IDENT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
DENIED_FUNCTION_NAMES = set(DENIED_FUNCTIONS)  # plus the engine's table functions, in main()


def refuse(message):
    return ClickHouseError(ACCESS_DENIED, f"default: {message} (refused by the embedded engine: "
                           "it serves Orrery's database only; see docs/security.md)")


def sql_tokens(sql):
    """ClickHouse's lexer, as far as the checks need it: yields (kind, text) for identifiers
    (bare: "word", quoted: "ident", unescaped), string literals and single punctuation characters, skipping
    whitespace and comments.

    Where it cannot be sure to read a query exactly as the engine does, it errs towards seeing
    more code, never less: `/* */` comments do not nest here (the engine's do), so a nested
    comment's tail is checked as code; line comments end at `\r` too (the engine's only at
    `\n`); every character that is not printable ASCII separates names; `$` (heredoc strings,
    `$` in identifiers) and backslash escapes inside quoted identifiers are refused outright."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if not "!" <= c <= "~":
            # Whitespace, and every character that is not printable ASCII: the engine takes
            # U+200B, U+2060, U+FEFF, U+180E, … for whitespace (Python does not), so
            # `file<U+200B>(` would otherwise pass as one unknown name. Splitting a name the
            # engine keeps whole can only make the check refuse more.
            i += 1
        elif sql.startswith("--", i) or (c == "#" and (i + 1 >= n or sql[i + 1].isspace()
                                                         or sql[i + 1] == "!")):
            while i < n and sql[i] not in "\r\n":
                i += 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in "'`\"":
            j, out = i + 1, []
            while j < n:
                d = sql[j]
                if d == "\\":
                    if c != "'":
                        raise refuse("backslash escapes in quoted identifiers are refused")
                    out.append(sql[j:j + 2])
                    j += 2
                elif d == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        out.append(c)
                        j += 2
                    else:
                        j += 1
                        break
                else:
                    out.append(d)
                    j += 1
            yield ("string" if c == "'" else "ident"), "".join(out)
            i = j
        elif c == "$":
            raise refuse("`$` outside string literals (heredocs, `$` in names) is refused")
        elif c in IDENT_CHARS:
            j = i + 1
            while j < n and sql[j] in IDENT_CHARS:
                j += 1
            if "$" in sql[i:j]:
                raise refuse("`$` outside string literals (heredocs, `$` in names) is refused")
            yield "word", sql[i:j]
            i = j
        else:
            yield "punct", c
            i += 1


def check_sql(sql):
    """Refuses what reaches outside the database (see the module docstring); returns the
    statement's first word, lower case."""
    tokens = list(sql_tokens(sql))
    first = tokens[0][1].lower() if tokens and tokens[0][0] == "word" else ""
    if first in DENIED_STATEMENTS:
        raise refuse(f"{first.upper()} statements are refused")
    for k, (kind, text) in enumerate(tokens):
        if kind == "punct" and text == ";" and any(t != ("punct", ";") for t in tokens[k + 1:]):
            raise ClickHouseError(SYNTAX_ERROR, "Multi-statements are not allowed", 400)
        if kind not in ("word", "ident"):
            continue
        word = text.lower()
        if kind == "word" and word in DENIED_WORDS:
            raise refuse(f"{text.upper()} is refused")
        if word in DENIED_FUNCTION_NAMES and k + 1 < len(tokens) and tokens[k + 1] == ("punct", "("):
            raise refuse(f"the function {text}() is refused")
    return first


# The user every chDB connection runs as. Its grants are the whole of what Orrery (schema
# migrations, inserts, queries, cancelling its own queries) needs; sources (FILE, URL, REMOTE,
# S3, MYSQL, …), dictionaries, functions, BACKUP, SYSTEM, access management and ALTER FREEZE
# (which writes outside the table) are left out, and the settings that name files are pinned.
USERS_XML = """<clickhouse>
  <users>
    <default>
      <password></password>
      <profile>default</profile>
      <quota>default</quota>
      <grants>
        <query>GRANT SHOW, SELECT, INSERT, ALTER, CREATE DATABASE, CREATE TABLE, CREATE VIEW, DROP DATABASE, DROP TABLE, DROP VIEW, TRUNCATE, OPTIMIZE, KILL QUERY ON *.*</query>
        <query>REVOKE ALTER FREEZE PARTITION, ALTER FETCH PARTITION, ALTER MOVE PARTITION ON *.*</query>
      </grants>
    </default>
  </users>
  <profiles>
    <default>
      <constraints>
        <output_format_schema><readonly/></output_format_schema>
        <format_schema><readonly/></format_schema>
      </constraints>
    </default>
  </profiles>
  <quotas><default/></quotas>
</clickhouse>
"""
CONFIG_XML = """<clickhouse>
  <users_config>{users}</users_config>
  <user_files_path>{empty}/</user_files_path>
  <user_scripts_path>{empty}/</user_scripts_path>
  <format_schema_path>{empty}/</format_schema_path>
</clickhouse>
"""


def write_access_config(directory):
    """Writes the engine's server config and users (above) into `directory` (0700); returns the
    config's path. `empty` is a directory nothing is ever put in: file paths the engine would
    resolve against it find nothing."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    empty = os.path.join(directory, "empty")
    os.makedirs(empty, mode=0o700, exist_ok=True)
    staging = os.path.join(directory, "staging")
    os.makedirs(staging, mode=0o700, exist_ok=True)
    for name in os.listdir(staging):  # bodies of inserts a crash interrupted
        try:
            os.remove(os.path.join(staging, name))
        except OSError:
            pass
    users = os.path.join(directory, "users.xml")
    config = os.path.join(directory, "config.xml")
    for path, text in ((users, USERS_XML), (config, CONFIG_XML.format(users=users, empty=empty))):
        tmp = path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return config, staging


def learn_engine(first):
    """Fills what depends on the engine's release, from its first connection: the numbers of
    the error codes named above, and every table function it knows (all refused but the
    allowlist's, so a new chDB release adds none silently)."""
    names = first.query("SELECT number, errorCodeToName(number) FROM numbers(2000) "
                        "WHERE errorCodeToName(number) != ''", "TabSeparated").bytes().decode()
    code_of = {name: int(code) for code, name in (line.split("\t") for line in names.split("\n") if line)}
    STATUS_BY_CODE.update({code_of[n]: status for n, status in STATUS_BY_NAME.items() if n in code_of})
    functions = first.query("SELECT name FROM system.table_functions", "TabSeparated").bytes().decode()
    DENIED_FUNCTION_NAMES.update(
        f for f in (line.strip().lower() for line in functions.split("\n")) if f
        and f not in ALLOWED_TABLE_FUNCTIONS)
