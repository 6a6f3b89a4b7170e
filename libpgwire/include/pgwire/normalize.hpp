// Statement normalization for statistics: literals, numbers and $n
// parameters become '?', comments go, whitespace folds, and a list of
// placeholders "(?, ?, ?)" becomes "(?, ...)". Two executions of the same
// statement with different values normalize to the same text.
#pragma once

#include <string>
#include <string_view>

namespace pgwire {

std::string normalize_sql(std::string_view sql);

}  // namespace pgwire
