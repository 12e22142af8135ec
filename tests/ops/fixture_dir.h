#pragma once
// The fixture folder (tests/fixtures' outputs in the build tree) as the op tests read it; one definition for the
// files of a unity batch.
#include <string>

inline const std::string kDir = WINNOW_FIXTURE_DIR;
