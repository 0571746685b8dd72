# bash completion for tremote (installed as
# share/bash-completion/completions/tremote).
_tremote()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    case $COMP_CWORD in
    1) COMPREPLY=($(compgen -W "run machine broker modal doctor help --help --version" -- "$cur")); return ;;
    esac
    case ${COMP_WORDS[1]} in
    machine)
        case $COMP_CWORD in
        2) COMPREPLY=($(compgen -W "add ls rm --help" -- "$cur")) ;;
        3) [ "$prev" = add ] && COMPREPLY=($(compgen -W "local static modal" -- "$cur")) ;;
        4) [ "${COMP_WORDS[2]}" = add ] &&
               COMPREPLY=($(compgen -W "T4 L4 A10G A100-40GB A100-80GB L40S H100 H200 B200" -- "$cur")) ;;
        *) [ "${COMP_WORDS[2]}" = add ] &&
               COMPREPLY=($(compgen -W "--address --secret-file --tls --fingerprint --ca --idle-timeout --timeout --wait --no-wait" -- "$cur")) ;;
        esac ;;
    broker) [ $COMP_CWORD = 2 ] && COMPREPLY=($(compgen -W "start stop status --help" -- "$cur")) ;;
    modal)
        case $COMP_CWORD in
        2) COMPREPLY=($(compgen -W "setup --help" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "--agent --out --dry-run --bundle-only --help" -- "$cur")) ;;
        esac ;;
    help) [ $COMP_CWORD = 2 ] && COMPREPLY=($(compgen -W "run machine broker modal doctor" -- "$cur")) ;;
    run|doctor) COMPREPLY=($(compgen -c -f -- "$cur")) ;;
    esac
}
complete -F _tremote tremote
