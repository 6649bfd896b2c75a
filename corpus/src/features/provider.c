/* Defines a variable and a function that consumer.c (another module) uses. */

long shared_counter = 5;
const char provider_name[] = "provider";

long provider_add(long x)
{
    shared_counter += x;
    return shared_counter;
}

long provider_reset(void)
{
    shared_counter = 5;
    return shared_counter;
}
