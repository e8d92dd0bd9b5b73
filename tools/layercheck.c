/* Link-only probe: see imgpipe_layercheck() in CMakeLists.txt. */
int main(void)
{
    return 0;
}
