#include "common/base/config_scalar.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace r2f {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Skips a run of digits starting at `i`; returns how many there were.
size_t SkipDigits(const std::string& s, size_t* i) {
  size_t start = *i;
  while (*i < s.size() && IsDigit(s[*i])) ++*i;
  return *i - start;
}

// from_chars rejects a leading '+'; the sign is otherwise passed through.
const char* SkipPlus(const std::string& text) {
  const char* p = text.data();
  return (!text.empty() && text[0] == '+') ? p + 1 : p;
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
size_t TypoDistance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

}  // namespace

ScalarParse ParseDecimalInt(const std::string& text, int64_t* out) {
  size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  if (SkipDigits(text, &i) == 0 || i != text.size()) return ScalarParse::kBadSyntax;
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(SkipPlus(text), end, value);
  if (ec == std::errc::result_out_of_range) return ScalarParse::kOutOfRange;
  if (ec != std::errc() || ptr != end) return ScalarParse::kBadSyntax;
  *out = value;
  return ScalarParse::kOk;
}

ScalarParse ParseDecimalDouble(const std::string& text, double* out) {
  // Validate the grammar first: from_chars alone would also take "inf", "nan" and "1.e5".
  size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  size_t int_digits = SkipDigits(text, &i);
  size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    frac_digits = SkipDigits(text, &i);
  }
  if (int_digits == 0 && frac_digits == 0) return ScalarParse::kBadSyntax;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (SkipDigits(text, &i) == 0) return ScalarParse::kBadSyntax;
  }
  if (i != text.size()) return ScalarParse::kBadSyntax;

  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(SkipPlus(text), end, value, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) return ScalarParse::kOutOfRange;
  if (ec != std::errc() || ptr != end || !std::isfinite(value)) return ScalarParse::kBadSyntax;
  *out = value;
  return ScalarParse::kOk;
}

std::string FormatDouble(double value) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return "?";
  return std::string(buf, ptr);
}

std::string RangeText(int64_t lo, int64_t hi) {
  const bool has_lo = lo != std::numeric_limits<int64_t>::min();
  const bool has_hi = hi != std::numeric_limits<int64_t>::max();
  if (has_lo && has_hi)
    return "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (has_lo) return "must be >= " + std::to_string(lo);
  if (has_hi) return "must be <= " + std::to_string(hi);
  return "";
}

std::string RangeText(double lo, double hi) {
  const bool has_lo = std::isfinite(lo) && lo != std::numeric_limits<double>::lowest();
  const bool has_hi = std::isfinite(hi) && hi != std::numeric_limits<double>::max();
  if (has_lo && has_hi) return "must be in [" + FormatDouble(lo) + ", " + FormatDouble(hi) + "]";
  if (has_lo) return "must be >= " + FormatDouble(lo);
  if (has_hi) return "must be <= " + FormatDouble(hi);
  return "";
}

std::string Abbreviate(const std::string& text, size_t max_chars) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() == text.size() && text.size() <= max_chars) return text;
  if (max_chars < 4) max_chars = 4;
  return line.substr(0, std::min(line.size(), max_chars - 3)) + "...";
}

std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = 3;  // only distances 1 and 2 are suggestions
  for (const std::string& c : candidates) {
    size_t d = TypoDistance(word, c);
    if (d < best_distance && d < word.size()) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string JoinComma(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

}  // namespace r2f
