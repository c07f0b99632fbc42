#ifndef CYAML_H
#define CYAML_H
// libyaml's event API imports into Swift as is; this target only makes it a module
// and links the library. Swift code uses it through Framework's YAMLParser.
#include <yaml.h>
#endif
