#include "CHTTPCoreShims.h"
