// Text <-> number helpers for configuration values, independent of yaml-cpp and of the locale.
//
// The accepted forms are deliberately narrower than strtod/strtoll: no leading blanks, no hex,
// no "inf"/"nan", no trailing garbage, so that a typo is an error rather than a surprise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace r2f {

enum class ScalarParse { kOk, kBadSyntax, kOutOfRange };

// Decimal integer: [+-]?[0-9]+.
ScalarParse ParseDecimalInt(const std::string& text, int64_t* out);

// Finite decimal number: [+-]?(digits[.digits?] | .digits)([eE][+-]?digits)?
// "3", "0.5", "1e-4", "-.5" are fine. kOutOfRange when the magnitude is too large for a double
// or so small that it would round to zero.
ScalarParse ParseDecimalDouble(const std::string& text, double* out);

// Shortest text that reads back to the same double ("0.5", "1e-06", "3").
std::string FormatDouble(double value);

// "must be in [lo, hi]", "must be >= lo", "must be <= hi"; the numeric limits (and infinities)
// count as "no bound". Empty when there is no bound at all.
std::string RangeText(int64_t lo, int64_t hi);
std::string RangeText(double lo, double hi);

// Shortens `text` for quoting in a message (at most `max_chars`, with "..." when cut).
std::string Abbreviate(const std::string& text, size_t max_chars = 40);

// Among `candidates`, the one closest to `word` by optimal-string-alignment distance (typos:
// one swap, insertion, deletion or substitution each cost 1), if the distance is at most 2
// and smaller than the word's length; else empty. Ties go to the earlier candidate.
std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates);

// "a, b, c".
std::string JoinComma(const std::vector<std::string>& items);

}  // namespace r2f
