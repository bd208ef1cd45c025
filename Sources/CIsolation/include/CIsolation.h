#ifndef CISOLATION_H
#define CISOLATION_H
#endif
