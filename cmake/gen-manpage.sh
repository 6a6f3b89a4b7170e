#!/bin/sh
# Writes a tool's man page: a hand-written roff template (docs/man/TOOL.1.in)
# with the tool's own --help put in, so the options in the page are always
# the built tool's.
#   gen-manpage.sh TOOL_BINARY TEMPLATE VERSION OUTPUT
# In the template, a line "@OPTIONS@" becomes the option groups of --help
# (.SH ARGUMENTS for "Positionals:", .SH OPTIONS for "Options:", .SS for the
# other groups), a line "@HELP_NOTES@" the paragraphs --help prints after
# them, and "@VERSION@" the version. POSIX sh and awk only (mawk will do).
set -eu
tool=$1 template=$2 version=$3 out=$4

help=$("$tool" --help)
[ -n "$help" ] || { echo "gen-manpage: $tool --help printed nothing" >&2; exit 1; }

printf '%s\n' "$help" | awk -v template="$template" -v version="$version" '
# roff text from a line of --help: backslashes kept, option words (-x, --xy-z)
# with \- dashes and no hyphenation (\%), no line starting with a control character.
function esc(s,    n, i, w, out, words) {
  gsub(/\\/, "\\e", s)
  n = split(s, words, " ")
  out = ""
  for (i = 1; i <= n; i++) {
    w = words[i]
    if (w ~ /^[(\[`"\047]*--?[A-Za-z]/) {
      gsub(/-/, "\\-", w)
      w = "\\%" w
    }
    out = out (i > 1 ? " " : "") w
  }
  if (out ~ /^[.\047]/) out = "\\&" out
  return out
}
function is_entry(s) { return s ~ /^  [^ ]/ }
function is_more(s) { return s ~ /^   +[^ ]/ }
# An entry: "-f,--format TEXT:{a,b}  description" -> .TP, the names in bold.
function entry(s,    head, desc, sp, names, rest, n, i, parts, tag) {
  s = substr(s, 3)
  if (match(s, /  +/)) {
    head = substr(s, 1, RSTART - 1)
    desc = substr(s, RSTART + RLENGTH)
  } else {
    head = s
    desc = ""
  }
  sp = index(head, " ")
  names = sp ? substr(head, 1, sp - 1) : head
  rest = sp ? substr(head, sp + 1) : ""
  n = split(names, parts, ",")
  tag = ""
  for (i = 1; i <= n; i++) {
    gsub(/-/, "\\-", parts[i])
    tag = tag (i > 1 ? ", " : "") "\\fB" parts[i] "\\fR"
  }
  if (rest != "") tag = tag " \\fI" esc(rest) "\\fR"
  options = options ".TP\n" tag "\n"
  if (desc != "") options = options esc(desc) "\n"
}
{ line[NR] = $0 }
END {
  i = 1
  while (i <= NR && line[i] !~ /^Usage:/) i++
  if (i > NR) { print "gen-manpage: no Usage: line in --help" > "/dev/stderr"; exit 1 }
  i++
  options = ""
  for (; i <= NR; i++) {
    s = line[i]
    if (s ~ /^[ \t]*$/) continue
    if (s ~ /^[^ ].*:$/ && i < NR && is_entry(line[i + 1])) {
      g = substr(s, 1, length(s) - 1)
      if (g == "Options") options = options ".SH OPTIONS\n"
      else if (g == "Positionals") options = options ".SH ARGUMENTS\n"
      else options = options ".SS \"" esc(g) "\"\n"
      continue
    }
    if (is_entry(s)) { entry(s); continue }
    if (is_more(s)) { sub(/^ +/, "", s); options = options esc(s) "\n"; continue }
    break
  }
  if (options == "") { print "gen-manpage: no options found in --help" > "/dev/stderr"; exit 1 }
  # What follows the options: paragraphs, a leading "Label:" in bold.
  notes = ""
  start = 1
  for (; i <= NR; i++) {
    s = line[i]
    if (s ~ /^[ \t]*$/) { start = 1; continue }
    if (start) {
      notes = notes ".PP\n"
      c = index(s, ": ")
      if (c > 1 && c <= 30 && substr(s, 1, c - 1) !~ /[.;,]/) {
        notes = notes "\\fB" esc(substr(s, 1, c)) "\\fR\n"
        s = substr(s, c + 2)
      }
      start = 0
    }
    notes = notes esc(s) "\n"
  }
  while ((getline t < template) > 0) {
    if (t == "@OPTIONS@") { printf "%s", options; continue }
    if (t == "@HELP_NOTES@") { printf "%s", notes; continue }
    gsub(/@VERSION@/, version, t)
    print t
  }
  close(template)
}' >"$out.tmp"
mv "$out.tmp" "$out"
